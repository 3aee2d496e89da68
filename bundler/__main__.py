"""`python -m bundler` is the same as the `bundle` console script."""

from bundler.entry import main

if __name__ == "__main__":
    main()
