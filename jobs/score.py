"""Stage `score`: the hybrid score of every user×candidate pair, the top-K, the cold-start list, similar movies.

    spark-submit [--py-files dist/movierec.zip] jobs/score.py --run-id ID [--setting value ...]

The stage is movierec.stages.score; this file only starts it.
"""

import sys

from movierec.stages.score import main

if __name__ == "__main__":
    sys.exit(main())
