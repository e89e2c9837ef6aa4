"""Learning-rate schedule and optimizers: AdamW-style (fine-tuning) and LAMB (pre-training), as in BERT.

Both are Keras 3 optimizers (slots, iterations, schedules from Keras). The Trainer combines the gradients of all
replicas, unscales, clips and checks them itself, then calls ``apply_reduced`` once per step: the update runs on
each replica's copy with the same combined gradient (Keras' own ``apply`` would sum across replicas again).
What they add over Keras' own AdamW / Lamb:
  * decoupled weight decay inside the update, skipped for LayerNorm and bias variables (Google's exclusions);
  * Adam without bias correction by default, as Google's and NVIDIA's AdamWeightDecayOptimizer
    (``bias_correction=True`` gives textbook Adam, as Hugging Face's AdamW);
  * LAMB as NVIDIA's: bias-corrected moments, the trust ratio ||w|| / ||adam_update + wd * w|| (Keras' Lamb
    leaves weight decay out of the ratio); bias correction counts steps from 1 (the TF1 LAMB divided by zero on
    its first step: fixed).
"""
import keras
import tensorflow as tf
from keras import ops

WEIGHT_DECAY_EXCLUDE = ("LayerNorm", "layer_norm", "bias")


class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then polynomial decay to ``end`` at ``total_steps``.

    ``step`` is the optimizer's 0-based iteration; during warm-up it uses peak * step / warmup_steps, so the first
    update has rate 0, as in Google's and NVIDIA's BERT and Hugging Face's linear schedule (it still sets the Adam
    moments). Two forms of the decay:
      * ``decay_from_warmup=False`` (Google's and NVIDIA's pre-training): the decay is counted from step 0 over
        all ``total_steps``, so right after warm-up the rate drops from ``peak`` to
        peak * (1 - warmup/total) ** power;
      * ``decay_from_warmup=True`` (fine-tuning: warm-up "then linear decay to 0", as PyTorch/Hugging Face's
        linear schedule): the decay starts at ``peak`` when warm-up ends and reaches ``end`` at ``total_steps``.
    """

    def __init__(self, peak, total_steps, warmup_steps=0, end=0.0, power=1.0, decay_from_warmup=False):
        self.peak = float(peak)
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = int(warmup_steps)
        self.end = float(end)
        self.power = float(power)
        self.decay_from_warmup = bool(decay_from_warmup)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        start = float(min(self.warmup_steps, self.total_steps)) if self.decay_from_warmup else 0.0
        span = max(float(self.total_steps) - start, 1.0)
        progress = ops.clip((step - start) / span, 0.0, 1.0)
        decayed = (self.peak - self.end) * ops.power(1.0 - progress, self.power) + self.end
        if self.warmup_steps <= 0:
            return decayed
        warm = self.peak * step / float(self.warmup_steps)
        return ops.where(step < float(self.warmup_steps), warm, decayed)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "end": self.end, "power": self.power, "decay_from_warmup": self.decay_from_warmup}


class AdamWeightDecay(keras.optimizers.Optimizer):
    """Adam with decoupled weight decay: w -= lr * (m / (sqrt(v) + eps) + wd * w), as Google's BERT.

    ``bias_correction=True`` divides the moments by (1 - beta ** t) (textbook Adam, Hugging Face's AdamW); Google's
    and NVIDIA's AdamWeightDecayOptimizer leave it out (the default). Slots ``m`` and ``v`` per variable (saved as
    ``<name>/adam_m`` and ``<name>/adam_v``).
    """

    def __init__(self, learning_rate, weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 exclude_from_weight_decay=WEIGHT_DECAY_EXCLUDE, bias_correction=False, name="adam_weight_decay",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.weight_decay_rate = weight_decay_rate
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.bias_correction = bool(bias_correction)
        self.decay_exclusions = tuple(exclude_from_weight_decay)
        self._decay_names = {}

    def set_variable_names(self, names):
        """``names``: {Google name: variable}; decides weight decay by name (LayerNorm, bias are excluded)."""
        self._decay_names = {self._var_key(v): n for n, v in names.items()}

    def _decays(self, variable):
        name = self._decay_names.get(self._var_key(variable))
        if name is None:
            name = getattr(variable, "path", None) or variable.name
        return self.weight_decay_rate > 0 and not any(part in name for part in self.decay_exclusions)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.m = self.add_optimizer_variables(var_list, "m")
        self.v = self.add_optimizer_variables(var_list, "v")

    def slots(self, variable):
        index = self._get_variable_index(variable)
        return {"adam_m": self.m[index], "adam_v": self.v[index]}

    def apply_reduced(self, grads, variables, strategy=None):
        """One update of ``variables`` with ``grads`` already combined across replicas (the same on each), in
        cross-replica context of ``strategy`` (default: the current one): each replica's copy is updated with its
        local copy of the gradient, no all-reduce. Advances ``iterations`` by one."""
        strategy = strategy or tf.distribute.get_strategy()
        learning_rate = self.learning_rate
        for grad, var in zip(grads, variables):
            var = var.value if isinstance(var, keras.Variable) else var
            strategy.extended.update(var, lambda v, g: self.update_step(g, v, learning_rate), args=(grad,),
                                     group=False)
        self.iterations.assign_add(1)

    def _adam_direction(self, gradient, variable, bias_correction=None):
        """Updates the moments and returns the Adam direction plus weight decay (float32)."""
        index = self._get_variable_index(variable)
        m, v = self.m[index], self.v[index]
        gradient = ops.cast(gradient, variable.dtype)
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(gradient))
        m_hat, v_hat = m, v
        if self.bias_correction if bias_correction is None else bias_correction:
            step = ops.cast(self.iterations + 1, variable.dtype)      # counts from 1: no division by zero
            m_hat = m / (1.0 - ops.power(self.beta_1, step))
            v_hat = v / (1.0 - ops.power(self.beta_2, step))
        update = m_hat / (ops.sqrt(v_hat) + self.epsilon)
        if self._decays(variable):
            update = update + self.weight_decay_rate * variable
        return update

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        self.assign_sub(variable, lr * self._adam_direction(gradient, variable))

    def get_config(self):
        config = super().get_config()
        config.update({"weight_decay_rate": self.weight_decay_rate, "beta_1": self.beta_1, "beta_2": self.beta_2,
                       "epsilon": self.epsilon, "exclude_from_weight_decay": list(self.decay_exclusions),
                       "bias_correction": self.bias_correction})
        return config


class Lamb(AdamWeightDecay):
    """LAMB (You et al.), NVIDIA's form: r = m_hat/(sqrt(v_hat)+eps) + wd*w; w -= lr * (||w||/||r||) * r.

    The trust ratio is 1 when either norm is zero.
    """

    def __init__(self, learning_rate, name="lamb", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        update = self._adam_direction(gradient, variable, bias_correction=True)
        w_norm = ops.sqrt(ops.sum(ops.square(variable)))
        u_norm = ops.sqrt(ops.sum(ops.square(update)))
        ratio = ops.where((w_norm > 0) & (u_norm > 0), w_norm / ops.maximum(u_norm, 1e-30), 1.0)
        self.assign_sub(variable, lr * ratio * update)


def create_optimizer(kind, schedule, weight_decay_rate=0.01, bias_correction=False):
    """``kind`` 'adam' (``bias_correction`` as AdamWeightDecay) or 'lamb' (always bias-corrected, as NVIDIA's)."""
    if kind == "adam":
        return AdamWeightDecay(schedule, weight_decay_rate=weight_decay_rate, bias_correction=bias_correction)
    if kind == "lamb":
        return Lamb(schedule, weight_decay_rate=weight_decay_rate)
    raise ValueError(f"unknown optimizer_type {kind!r} (use 'lamb' or 'adam')")
