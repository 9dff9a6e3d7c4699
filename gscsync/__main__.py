from gscsync.cli import main

main()
