from gscsync.signals import main

main()
