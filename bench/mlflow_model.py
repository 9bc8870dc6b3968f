"""Runs in the benchmark's MLflow environment: save the pipeline's XGBoost model as an MLflow model."""

import sys

import mlflow.xgboost
import xgboost as xgb

booster = xgb.Booster()
booster.load_model(sys.argv[1])
booster.set_param({"nthread": 1})  # the same single-threaded predict the project's endpoint uses
mlflow.xgboost.save_model(booster, sys.argv[2], model_format="json")
