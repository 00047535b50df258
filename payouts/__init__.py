"""payouts: the epoch run (gather → compute → write), emission, allocation, ledger, manifest.

`ENGINE_VERSION` is recorded beside every closed epoch (`reward_epochs.engine_version`): the
version of this code that closed it.
"""

ENGINE_VERSION = "0.1.0"
