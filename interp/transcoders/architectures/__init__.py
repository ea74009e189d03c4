"""Transcoder architectures, one module each: its config, its class and its loss.

Every module here registers itself with :func:`interp.transcoders.registry.register`; the
registry imports them all, so adding an architecture is adding one module to this folder.
"""
