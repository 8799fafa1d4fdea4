from velobench.cli import main

main()
