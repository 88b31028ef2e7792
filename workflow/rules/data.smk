# Data: synthetic generation, clip indexing (N = ceil(T / L) clips per video), clip cache.


rule synth:
    output:
        manifest="{root}/manifest.parquet",
    params:
        root=lambda w: w.root,
        preset=lambda w: synth_of(w.root).get("preset", "default"),
        seed=lambda w: synth_of(w.root).get("seed", 0),
        overrides=lambda w: pl.synth_overrides(synth_of(w.root)),
        config=lambda w: repr(synth_of(w.root)),
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
        unpack(
            dvc_inputs(
                "index",
                synth=synth_input,
            )
        ),
    output:
        index=INDEX,
    params:
        kind=lambda w: ds(w)["kind"],
        root=root_of,
        clip_len=config["data"]["clip_len"],
        val_fraction=config["data"]["val_fraction"],
        seed=config["seed"],
        config=section("index"),
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
        unpack(
            dvc_inputs(
                "cache",
                synth=synth_input,
                index=INDEX,
            )
        ),
    output:
        cache=CACHE,
    params:
        root=root_of,
        short_side=config["data"]["short_side"],
        config=section("cache"),
    log:
        "logs/cache/{dataset}_fold{fold}.log",
    conda:
        ENV
    resources:
        mem_mb=8000,
        runtime=600,
    shell:
        SHELL["cache"]
