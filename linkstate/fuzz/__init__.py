"""Fuzzing as a feature: `linkstate fuzz` against every surface that reads bytes from a peer or a file.

A top layer beside linkstate.cli: it may import proto, linkstate.core and linkstate.service (and the optional
fuzzing engines, atheris and hypothesis); nothing in the project imports it but the CLI.
Modules: `base` (what a target is, the finding type, the documented waivers), `targets` (the four targets and
their invariants), `mutate` (the structure-aware mutators), `seeds` (the committed corpora and dictionaries),
`engine` (atheris/libFuzzer in worker processes, the hypothesis fallback, replay), `worker` (the libFuzzer
process), `live` (fuzzing a running node over loopback TCP). docs/FUZZING.md is the user's guide.
This package file imports nothing, so the worker can instrument the code under test before it is loaded.
"""
