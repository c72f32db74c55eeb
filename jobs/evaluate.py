"""Stage `evaluate`: refit the pipeline on each user's earlier ratings, measure on their latest 20%.

    spark-submit [--py-files dist/movierec.zip] jobs/evaluate.py --run-id ID [--setting value ...]

The stage is movierec.stages.evaluate; this file only starts it.
"""

import sys

from movierec.stages.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
