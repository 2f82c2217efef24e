from signoff_server.cli import main

main()
