"""coupled-quality's stages and the libraries they are built from.

Stages (one module each, entry function `run`; `graph.py` wires them into the task graph; no stage imports
another stage):

    webdeps    the pinned renderer for the browser pages, fetched from the npm registry (no Node)
    demopack   the bundled demo pack: coupled fg/bg variants of presets that screen clean
    convert    a pack's .milk presets converted to butterchurn presets, through the cache
    sample     one shard of a pack's pairs rendered in headless Chromium -> rows (`shards/NNNN.jsonl`)
    merge      a pack's shards -> eval.jsonl + meta.json
    train      the coupling net fitted on eval rows, elite pairs and negatives -> checkpoint + report
    score      a pack's pairs-quality.v0.json from the checkpoint, behind the gates
    verify     the player, headless: does it pick by quality and draw?
    report     reports/<pack>/index.html
    screen     every preset of a folder converted and drawn once (a tool, not in the graph)
    graph      the task graph (doit's tasks), loaded by dodo.py in a checkout and by `cli` when installed
    cli        the `coupled-quality` command (`python -m stages.cli`): the task graph through doit, plus the
               tools screen, manifest, serve, demo-bases, install-chromium

Libraries, by concept (lower layers never import higher ones):

    core/      errors, contracts (every file format), workspace (every path), settings, progress,
               keys (a row's identity: content key and all its parts), plan (pairs -> ordered shards),
               rows (the rows a pack already has), code (code is an input: when an edit rebuilds what),
               uptodate (doit's up-to-date checks, named)
    presets/   milk (.milk reader), hlsl (HLSL -> GLSL translator), conversion (preset files -> butterchurn
               presets, cached), manifests (a pack's manifest from its folders)
    render/    browser (find/launch/end Chromium), pool (pairs rendered by a pool of pages), audio,
               framestats (frames -> row statistics), server (the player's HTTP server), versions (the
               versions of the code that decides what a row measures, handed to core.keys)
    learn/     features, model, checkpoint, sources (elite / eval / negatives), metrics, gates,
               inputs (what training reads, for doit's up-to-date checks), training (the loop), scoring
"""
