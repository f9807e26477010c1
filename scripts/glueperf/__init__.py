"""glueperf: measure how well, how fast and how leanly a text classifier runs on GLUE data.

The Snakemake rules call thin scripts in ``scripts/``; everything they do lives in the modules of
this package so that it can be imported and tested without Snakemake.
"""


class GlueperfError(Exception):
    """An error in the user's input (data, model or config), with a message meant for people.

    Scripts turn it into one clear line on stderr and a non-zero exit instead of a traceback.
    """


# The label of a row without one (GLUE's test splits hide theirs): never scored.
NO_LABEL = -1
