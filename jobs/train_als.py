"""Stage `train_als`: ALS on implicit feedback over the run's ratings, saved with Spark's model writer.

    spark-submit [--py-files dist/movierec.zip] jobs/train_als.py --run-id ID [--setting value ...]

The stage is movierec.stages.train_als; this file only starts it.
"""

import sys

from movierec.stages.train_als import main

if __name__ == "__main__":
    sys.exit(main())
