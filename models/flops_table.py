"""Parameters and FLOPs (batch 1, square inputs) of the registered variants, counted by
usvid.models.flops; written by `python -m usvid.models.flops`, do not edit by hand.
usvid 0.1.0, torch 2.14.1+cu130.
"""

TABLE = {
    "0.1.0:7bc7d7b0ec6e6016": {
        "name": "effl0_cls", "params": 3372994, "flops": {"256": 983991296, "512": 3935949824}},
    "0.1.0:64233739236636b5": {
        "name": "effl2_cls", "params": 4813058, "flops": {"256": 1483770880, "512": 5935068160}},
    "0.1.0:bcedb0907c4c3cd0": {
        "name": "lanet_effl0", "params": 3597566, "flops": {"256": 997936576, "512": 3989252032}},
    "0.1.0:44d12dc8a9c81617": {
        "name": "lanet_effl2", "params": 5038031, "flops": {"256": 1497901440, "512": 5989108608}},
    "0.1.0:970c26a7a5348382": {
        "name": "lanet_r101", "params": 43236292, "flops": {"256": 20215115264, "512": 80852080640}},
    "0.1.0:27475a8035871a8a": {
        "name": "lanet_r18", "params": 11227792, "flops": {"256": 4549590528, "512": 18197833728}},
    "0.1.0:5980b27d69c739e7": {
        "name": "lanet_r34", "params": 21335952, "flops": {"256": 9381428736, "512": 37525186560}},
    "0.1.0:a7fe9a61f184869f": {
        "name": "lanet_r50", "params": 24244164, "flops": {"256": 10517884416, "512": 42063157248}},
    "0.1.0:87ff82ff5f18e460": {
        "name": "lanet_tiny", "params": 181300, "flops": {"256": 91781568, "512": 367117248}},
    "0.1.0:0a0c652f5c0bf5d0": {
        "name": "resnet101_cls", "params": 42497986, "flops": {"256": 20168318976, "512": 80673251328}},
    "0.1.0:673f88a5c3db9c13": {
        "name": "resnet18_cls", "params": 11171266, "flops": {"256": 4531947520, "512": 18127783936}},
    "0.1.0:7a434fc868f19837": {
        "name": "resnet34_cls", "params": 21279426, "flops": {"256": 9363785728, "512": 37455136768}},
    "0.1.0:7b8cdc0d44a19671": {
        "name": "resnet50_cls", "params": 23505858, "flops": {"256": 10471088128, "512": 41884327936}},
    "0.1.0:4fc175e61686cdb1": {
        "name": "resnet_tiny_cls", "params": 176058, "flops": {"256": 82051328, "512": 328204544}},
    "0.1.0:016ae974daa8e039": {
        "name": "rmtl_effl0", "params": 9272195, "flops": {"256": 2192475136, "512": 8769885184}},
    "0.1.0:1294de61b946dd40": {
        "name": "rmtl_effl2", "params": 10712259, "flops": {"256": 2692254720, "512": 10769003520}},
    "0.1.0:8cf013f83fd152f4": {
        "name": "rmtl_r18", "params": 13924739, "flops": {"256": 5337778176, "512": 21351106560}},
    "0.1.0:9069ecdd21100ebc": {
        "name": "rmtl_r50", "params": 32550787, "flops": {"256": 12082225152, "512": 48328876032}},
    "0.1.0:b213dfbe396f5a15": {
        "name": "rmtl_tiny", "params": 219187, "flops": {"256": 94699776, "512": 378798336}},
}
