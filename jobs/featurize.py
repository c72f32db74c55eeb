"""Stage `featurize`: movie content features and user taste profiles.

    spark-submit [--py-files dist/movierec.zip] jobs/featurize.py --run-id ID [--setting value ...]

The stage is movierec.stages.featurize; this file only starts it.
"""

import sys

from movierec.stages.featurize import main

if __name__ == "__main__":
    sys.exit(main())
