"""Matplotlib styles shipped with npcell, applied scoped (never on import)::

    with plt.style.context("npcell.styles.npcell"):
        ...
"""
