"""`instrument` functions for tools.tiny.run, used by tests/test_training.py.

They live at module level in an importable module, so that they also work in ranks started with
"spawn" (tools.tiny.run pickles them then; its default, "fork", inherits them). Each receives the
freshly imported training script as `module` and a picklable dict `result` that comes back.
"""
import functools
import os
import threading

import torch


def watchdog(seconds=180):
    """In a rank process: exit hard after `seconds`, so a collective that hangs fails the test."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        timer = threading.Timer(seconds, os._exit, args=(97,))
        timer.daemon = True
        timer.start()


def snapshot(model, optimizers, init):
    """Parameters (final, and `init` at the trial's start), and per optimizer
    {param name: {state key: numel}} of the tensors in its state."""
    names = {p: n for n, p in model.named_parameters()}
    states = []
    for opt in optimizers:
        states.append({names[p]: {k: v.numel() for k, v in st.items() if torch.is_tensor(v) and v.dim() > 0}
                       for p, st in opt.state.items()})
    return dict(params={n: p.detach().clone() for n, p in model.named_parameters()}, init=init, states=states,
                names=[[[names[p] for p in g["params"]] for g in opt.param_groups] for opt in optimizers])


def track_trials(module, result, on_trial=None):
    """Record every trial's final parameters and optimizer states in result["trials"].

    The script re-initializes one model per trial, so a trial's final state is taken when the next
    trial initializes (and when main returns). `on_trial(module, model, index)` runs after init_params.
    """
    current = {}
    init_params, make_optimizers, main = module.init_params, module.make_optimizers, module.main

    def close_trial():
        if current:
            result.setdefault("trials", []).append(
                snapshot(current.pop("model"), current.pop("optimizers"), current.pop("init")))

    def tracked_init(model):
        close_trial()
        init_params(model)
        if on_trial is not None:
            on_trial(module, model, len(result.get("trials", [])))

    def tracked_make(model):
        optimizers = make_optimizers(model)  # right after init_params (and on_trial)
        current.update(model=model, optimizers=optimizers,
                       init={n: p.detach().clone() for n, p in model.named_parameters()})
        return optimizers

    def tracked_main(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        finally:
            close_trial()

    module.init_params, module.make_optimizers, module.main = tracked_init, tracked_make, tracked_main


def track(module, result):
    watchdog()
    track_trials(module, result)


def capture_and_track(module, result):
    """tools.tiny.capture_model and track_trials together, to compare the two."""
    from tools import tiny
    tiny.capture_model(module, result)
    track_trials(module, result)


def _fp32_from_second_trial(module, model, index):
    if index == 1:  # runs before make_optimizers, so this trial's Muon takes the fp32 NS
        model.embed.float()  # the embedding sets the activation dtype: all float32 from here
        module.newton_schulz = functools.partial(module.newton_schulz, dtype=torch.float32)


def bf16_then_fp32(module, result):
    """Trial 1 as the script is (bf16); trial 2 all in float32 (embed and Newton-Schulz)."""
    watchdog()
    track_trials(module, result, on_trial=_fp32_from_second_trial)


def nan_loss(module, result, trial=0, step=3, rank=0):
    """From training step `step` of trial `trial` on, rank `rank`'s training loss is NaN."""
    watchdog()
    track_trials(module, result)
    state = dict(trial=-1, next_step=0)
    init_params, lr_multiplier, forward = module.init_params, module.lr_multiplier, module.GPT.forward

    def counting_init(model):
        state.update(trial=state["trial"] + 1, next_step=0)
        init_params(model)

    def counting_lr(s):  # called once per training step, after its forward-backward
        state["next_step"] = s + 1
        return lr_multiplier(s)

    def poisoned_forward(self, inputs, targets):
        loss = forward(self, inputs, targets)
        if (torch.is_grad_enabled() and state["trial"] == trial and state["next_step"] >= step
                and int(os.environ["RANK"]) == rank):
            result.setdefault("poisoned_steps", set()).add(state["next_step"])
            loss = loss * float("nan")
        return loss

    module.init_params, module.lr_multiplier, module.GPT.forward = counting_init, counting_lr, poisoned_forward


def record_build(module, result):
    """result["built"] = True once a GPT is constructed; result["pg"]: whether a process group was made."""
    GPT = module.GPT

    class RecordedGPT(GPT):
        def __init__(self, *args, **kwargs):
            result["built"] = True
            super().__init__(*args, **kwargs)

    module.GPT = RecordedGPT
    init = module.dist.init_process_group

    def recorded_init(*args, **kwargs):
        result["pg"] = True
        return init(*args, **kwargs)

    module.dist = _DistProxy(module.dist, recorded_init)


class _DistProxy:
    def __init__(self, dist, init_process_group):
        self._dist, self.init_process_group = dist, init_process_group

    def __getattr__(self, name):
        return getattr(self._dist, name)



def adamw_everywhere_fp32(module, result):
    """A user's optimizer without `owner` (AdamW over every parameter), all in float32: main()
    must sum every gradient over ranks itself (the matrices one by one, the vectors in one bucket)."""
    watchdog()

    def make_optimizers(model):
        model.embed.float()  # the activations follow: all float32
        return [torch.optim.AdamW(model.parameters(), lr=0.01, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.01)]
    module.make_optimizers = make_optimizers
    track_trials(module, result)


def frozen_vectors(module, result):
    """Every bias and gain frozen (requires_grad False, so no gradient): the optimizers get only matrices.
    result["vectors_moved"]: whether a frozen parameter changed by the end of the run."""
    init_params, main = module.init_params, module.main

    def frozen_init(model):
        init_params(model)
        result["frozen"] = {n: p.detach().clone() for n, p in model.named_parameters() if p.ndim < 2}
        for p in model.parameters():
            p.requires_grad_(p.ndim >= 2)
        module._model = model

    def watched_main(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        finally:
            named = dict(module._model.named_parameters())
            result["vectors_moved"] = any(not torch.equal(named[n], v) for n, v in result["frozen"].items())

    module.init_params, module.main = frozen_init, watched_main
