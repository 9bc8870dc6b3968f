"""SageMaker's control plane: models, endpoint configs, endpoints and the fleets of serving instances behind them."""
