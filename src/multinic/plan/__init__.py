"""Address planning: the seed's design decisions as a tool that plans, validates and exports.

``parse.load_fabric`` reads a fabric file, ``allocate.plan_fabric`` allocates,
``validate.validate`` adds the findings, ``report``/``svgmap``/``export`` write
the results. Not on any plugin's path: dataclasses and PyYAML are fine here.
"""
