from interlink.cli.main import main

main()
