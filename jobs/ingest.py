"""Stage `ingest`: MovieLens CSVs → validated Parquet, bad rows set aside with their reason.

    spark-submit [--py-files dist/movierec.zip] jobs/ingest.py --run-id ID [--setting value ...]

The stage is movierec.stages.ingest; this file only starts it.
"""

import sys

from movierec.stages.ingest import main

if __name__ == "__main__":
    sys.exit(main())
