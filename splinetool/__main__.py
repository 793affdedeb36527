from splinetool.cli import main

main()
