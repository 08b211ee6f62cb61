import os
import sys

from bench.run import main
from devstack.stack import ROOT

os.chdir(ROOT)
sys.exit(main())
