import sys

from demo.board.server import main

sys.exit(main())
