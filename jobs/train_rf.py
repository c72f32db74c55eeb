"""Stage `train_rf`: the content model, a random forest predicting ratings from pair content features.

    spark-submit [--py-files dist/movierec.zip] jobs/train_rf.py --run-id ID [--setting value ...]

The stage is movierec.stages.train_rf; this file only starts it.
"""

import sys

from movierec.stages.train_rf import main

if __name__ == "__main__":
    sys.exit(main())
