# Data: synthetic generation, clip indexing (N = ceil(T / L) clips per video), clip cache.


rule synth:
    output:
        manifest="{root}/manifest.parquet",
    params:
        root=lambda w: w.root,
        preset=lambda w: next(d["synth"]["preset"] for d in config["datasets"].values() if d["root"] == w.root and "synth" in d),
        seed=lambda w: next(d["synth"]["seed"] for d in config["datasets"].values() if d["root"] == w.root and "synth" in d),
    log:
        "logs/synth/{root}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        SHELL["synth"]


rule index:
    input:
        synth_input,
    output:
        index=INDEX,
    params:
        kind=lambda w: ds(w)["kind"],
        root=root_of,
        clip_len=config["data"]["clip_len"],
        val_fraction=config["data"]["val_fraction"],
        seed=config["seed"],
    log:
        "logs/index/{dataset}_fold{fold}.log",
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        SHELL["index"]


rule cache:
    input:
        synth_input,
        index=INDEX,
    output:
        cache=CACHE,
    params:
        root=root_of,
        short_side=config["data"]["short_side"],
    log:
        "logs/cache/{dataset}_fold{fold}.log",
    conda:
        ENV
    resources:
        mem_mb=8000,
        runtime=600,
    shell:
        SHELL["cache"]
