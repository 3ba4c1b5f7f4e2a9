"""python -m charrnn: the same command line as `charrnn`."""

from charrnn.cli.launch import main

if __name__ == "__main__":
    main()
