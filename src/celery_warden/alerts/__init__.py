"""Alerting: rules over the data Warden already has, one evaluator per fleet, notifiers."""
