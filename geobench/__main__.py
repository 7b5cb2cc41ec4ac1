from geobench.cli import main

main()
