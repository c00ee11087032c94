from aerovision.cli import main

main()
