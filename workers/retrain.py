"""``python -m workers.retrain``: the retraining worker (see :mod:`concner.jobs.worker`).

Configuration: ``CONCNER_CONFIG`` (TOML) and ``CONCNER_*`` environment variables, e.g.
``CONCNER_SERVICES__DATABASE_URL``; ``CONCNER_REDIS_URL`` switches the queue to Redis.
"""

import sys

from concner.jobs.worker import main

if __name__ == "__main__":
    sys.exit(main())
