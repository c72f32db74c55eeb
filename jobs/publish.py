"""Stage `publish`: the whole run into the store, then one transaction makes it the active run.

    spark-submit [--py-files dist/movierec.zip] jobs/publish.py --run-id ID [--setting value ...]

The stage is movierec.stages.publish; this file only starts it.
"""

import sys

from movierec.stages.publish import main

if __name__ == "__main__":
    sys.exit(main())
