"""The online loop: select -> relabel -> retrain -> gate -> promote / roll back (`endcloud evolve`)."""
