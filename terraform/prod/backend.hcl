# Partial configuration of the S3 backend declared in cdk.tf.json (`backend "s3" {}`):
#   terraform init -backend-config=backend.hcl
# The state bucket is created once per account, outside this configuration (versioned, encrypted, private).
# Replace 123456789012 with the account id.
bucket       = "customerchurn-terraform-state-123456789012-us-east-1"
key          = "safedeploy/customerchurn-prod/base-infrastructure.tfstate"
region       = "us-east-1"
encrypt      = true
use_lockfile = true # S3-native state locking (Terraform >= 1.10), no DynamoDB table
