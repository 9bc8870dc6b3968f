"""CodeDeploy: lifecycle-hook statuses, and the leases that roll a deployment back when its controller is lost."""
