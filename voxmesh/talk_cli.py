"""placeholder until written."""


def add_parser(sub):  # type: ignore[no-untyped-def]
    pass
