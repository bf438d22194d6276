from catalog_refresher.cli import main

main()
