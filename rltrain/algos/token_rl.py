"""What the token-level algorithms (PPO and GRPO on `env=text`) share, written once.

- the policy network and its frozen reference (pretrained on the task's noisy demonstrations,
  cached in the run directory);
- sampling completions and scoring their tokens (`sample`, `score_tokens`);
- the exact optimum on the prompts' token tree and what is logged against it (`Oracle`);
- the adaptive KL controller of Ziegler et al. (2019).

Token buffers are [B, P + 1 + L]: prompt, SEP, completion (PAD after it). The decision of
completion step d reads position P + d; its token is written at P + 1 + d.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from rltrain import tags
from rltrain.algos.base import Context
from rltrain.blocks.kl_optimum import Tree, policy_report, soft_optimum
from rltrain.blocks.optim import Adam
from rltrain.config.envs import TextEnvConfig
from rltrain.envs.render_tokens import TokenRow, token_heatmap, token_table
from rltrain.envs.text import TextTask
from rltrain.logging import Recorder
from rltrain.networks.transformer import TokenTransformer

REFERENCE_FILE = "reference.pt"
PRETRAIN_BATCH = 256
PRETRAIN_SEED = 12345  # the reference depends on the task, not on the run's seed
# the sample completions shown at each log: the same prompts and draws every time (their own
# generator, so showing them leaves the training RNG alone), so pictures differ by policy only
SHOWN_PROMPTS, SHOWN_SEED = 4, 0


def build_network(task: TextTask, ctx: Context) -> TokenTransformer:
    net = ctx.cfg.network
    width = task.prompt_len + 1 + task.max_new_tokens
    return TokenTransformer(
        task.vocab.size, task.vocab.num_actions, width, net.width, net.layers, net.heads
    ).to(ctx.device)


class Completions(NamedTuple):
    tokens: Tensor  # [B, P + 1 + L]
    actions: Tensor  # [B, L] action indices (num_digits = EOS), 0 on padding
    mask: Tensor  # [B, L] float, 1 on the tokens the completion has
    rewards: Tensor  # [B] R(x, y)


@torch.no_grad()
def sample(
    net: TokenTransformer, task: TextTask, prompts: np.ndarray, device: torch.device,
    greedy: bool = False, generator: torch.Generator | None = None,
) -> Completions:  # fmt: skip
    """Autoregressive sampling of one completion per prompt row, then the task's rewards.
    `generator` draws the tokens instead of torch's global RNG (the pictures use their own)."""
    p, length, eos = task.prompt_len, task.max_new_tokens, task.vocab.num_digits
    tokens = torch.from_numpy(task.encode(prompts)).to(device)
    actions = torch.zeros(len(prompts), length, dtype=torch.int64, device=device)
    mask = torch.zeros(len(prompts), length, device=device)
    alive = torch.ones(len(prompts), dtype=torch.bool, device=device)
    for d in range(length):
        logits = net(tokens[:, : p + 1 + d])[0][:, -1]
        if greedy:
            a = logits.argmax(-1)
        else:
            a = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
        a = torch.where(alive, a, 0)
        actions[:, d], mask[:, d] = a, alive.float()
        token = torch.where(a == eos, task.vocab.eos, a)
        tokens[:, p + 1 + d] = torch.where(alive, token, task.vocab.pad)
        alive &= a != eos
    host = tokens.cpu().numpy()
    pairs = zip(prompts.tolist(), host, strict=True)
    rewards = [task.reward(tuple(x), task.completion(row)) for x, row in pairs]
    return Completions(tokens, actions, mask, torch.tensor(rewards, device=device))


def score_tokens(
    net: TokenTransformer, task: TextTask, tokens: Tensor, actions: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(log pi(a_t|s_t), V(s_t), H(pi(.|s_t))), each [B, L], from one forward pass."""
    p, length = task.prompt_len, task.max_new_tokens
    logits, values = net(tokens[:, : p + length])
    log_pi = F.log_softmax(logits[:, p:], dim=-1)
    entropy = -(log_pi.exp() * log_pi).sum(-1)
    return log_pi.gather(2, actions[..., None]).squeeze(2), values[:, p:], entropy


@torch.no_grad()
def act_on_buffers(
    net: TokenTransformer, task: TextTask, obs: np.ndarray, greedy: bool
) -> np.ndarray:
    """Next actions for env observations (token buffers, PAD after the current position)."""
    tokens = torch.from_numpy(np.asarray(obs, dtype=np.int64)).to(next(net.parameters()).device)
    p = task.prompt_len
    done = (tokens[:, p + 1 :] != task.vocab.pad).sum(1)
    logits = net(tokens)[0][torch.arange(len(tokens)), p + done]
    a = logits.argmax(-1) if greedy else torch.multinomial(logits.softmax(-1), 1).squeeze(1)
    return a.cpu().numpy()


def demonstrations(task: TextTask, rng: np.random.Generator, count: int) -> tuple[Tensor, Tensor]:
    """Token buffers of noisy demonstrations and their next-token targets ([B, L], -1 = none)."""
    prompts = task.sample_prompts(rng, count)
    tokens = task.encode(prompts)
    targets = np.full((count, task.max_new_tokens), -1, dtype=np.int64)
    for i, x in enumerate(prompts.tolist()):
        y = list(task.demonstration(tuple(x), rng))[: task.max_new_tokens]
        tokens[i, task.prompt_len + 1 : task.prompt_len + 1 + len(y)] = y
        ends = len(y) < task.max_new_tokens  # EOS unless the length limit ends it
        if ends:
            tokens[i, task.prompt_len + 1 + len(y)] = task.vocab.eos
        targets[i, : len(y) + ends] = y + [task.vocab.num_digits] * ends
    return torch.from_numpy(tokens), torch.from_numpy(targets)


def pretrain_reference(task: TextTask, ctx: Context) -> TokenTransformer:
    """Supervised next-token training on the task's demonstrations; loaded from the run
    directory when a previous start of the run trained it. The global RNGs are left untouched
    (forked), so a run's own randomness does not depend on whether the file existed."""
    path = None if ctx.run_dir is None else ctx.run_dir / REFERENCE_FILE
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PRETRAIN_SEED)
        net = build_network(task, ctx)
        if path is not None and path.is_file():
            net.load_state_dict(torch.load(path, weights_only=True, map_location=ctx.device))
        elif ctx.run_dir is not None:
            rng = np.random.default_rng(PRETRAIN_SEED)
            opt = Adam(net.parameters(), lr=3e-3, eps=1e-8)
            steps = task.cfg.pretrain_steps
            for i in range(steps):
                opt.param_groups[0]["lr"] = 3e-3 * (1 - i / steps)
                tokens, targets = demonstrations(task, rng, PRETRAIN_BATCH)
                logits = net(tokens.to(ctx.device)[:, : task.prompt_len + task.max_new_tokens])[0]
                loss = F.cross_entropy(
                    logits[:, task.prompt_len :].flatten(0, 1), targets.to(ctx.device).flatten(),
                    ignore_index=-1,
                )  # fmt: skip
                opt.zero_grad()
                loss.backward()
                opt.step()
            assert path is not None
            tmp = path.with_suffix(".tmp")
            torch.save(net.state_dict(), tmp)
            tmp.replace(path)
    net.requires_grad_(False)
    return net.eval()


def build_tree(task: TextTask) -> tuple[Tree, np.ndarray]:
    """Every state of every prompt (prefixes of digits shorter than max_new_tokens), parents
    first, with their token buffers; an action ends the completion at EOS or the length limit."""
    length, digits, eos = task.max_new_tokens, task.vocab.num_digits, task.vocab.num_digits
    buffers: list[np.ndarray] = []
    depth: list[int] = []
    child: list[list[int]] = []
    end: list[list[float]] = []
    roots: list[int] = []
    for x in task.prompts.tolist():
        base = task.encode(np.array([x]))[0]
        frontier: list[tuple[int, ...]] = [()]
        index: dict[tuple[int, ...], int] = {}
        for d in range(length):
            for prefix in frontier:
                index[prefix] = len(buffers)
                row = base.copy()
                row[task.prompt_len + 1 : task.prompt_len + 1 + d] = prefix
                buffers.append(row)
                depth.append(d)
            frontier = [(*pre, a) for pre in frontier for a in range(digits)]
        roots.append(index[()])
        for prefix in sorted(index, key=len):
            kids, rewards = [], []
            for a in range(digits + 1):
                y = prefix if a == eos else (*prefix, a)
                if a == eos or len(y) == length:
                    kids.append(-1)
                    rewards.append(task.reward(tuple(x), y))
                else:
                    kids.append(index[y])
                    rewards.append(0.0)
            child.append(kids)
            end.append(rewards)
    # children were appended in prefix order within each prompt, like the buffers
    tree = Tree(
        torch.tensor(child), torch.tensor(end, dtype=torch.float64), torch.tensor(depth),
        torch.tensor(roots),
    )  # fmt: skip
    return tree, np.stack(buffers)


def tree_size(task: TextTask) -> int:
    digits, length = task.vocab.num_digits, task.max_new_tokens
    return len(task.prompts) * sum(digits**d for d in range(length))


class Oracle:
    """pi*, V*, Q* on every state of the task, computed once per run from the reference; then
    each call to `record` logs the policy's exact distance to them."""

    def __init__(self, task: TextTask, reference: TokenTransformer, beta: float) -> None:
        self.task, self.beta = task, beta
        self.tree, buffers = build_tree(task)
        device = next(reference.parameters()).device
        self.tokens = torch.from_numpy(buffers).to(device)
        self.ref_log_probs, _ = self.evaluate(reference)
        self.optimum = soft_optimum(self.tree, self.ref_log_probs, beta)
        self.reference_objective = float(
            policy_report(self.tree, self.ref_log_probs, self.ref_log_probs,
                          self.optimum.log_pi, beta).objective
        )  # fmt: skip

    @torch.no_grad()
    def evaluate(self, net: TokenTransformer) -> tuple[Tensor, Tensor]:
        """log pi(.|s) [N, A] and V(s) [N] of every tree state, in batches."""
        logs, values = [], []
        rows = torch.arange(len(self.tokens), device=self.tokens.device)
        at = self.task.prompt_len + self.tree.depth.to(self.tokens.device)
        for chunk in torch.split(rows, 8192):
            logits, v = net(self.tokens[chunk])
            logs.append(F.log_softmax(logits[chunk - chunk[0], at[chunk]].double(), -1))
            values.append(v[chunk - chunk[0], at[chunk]].double())
        return torch.cat(logs).cpu(), torch.cat(values).cpu()

    def report(self, net: TokenTransformer, value_head: bool = True) -> dict[str, float]:
        """The exact objective and KLs of `net`'s policy; with `value_head` (PPO; GRPO trains
        none, so its untrained head's error would only mislead) also its value errors."""
        log_pi, values = self.evaluate(net)
        rep = policy_report(self.tree, log_pi, self.ref_log_probs, self.optimum.log_pi, self.beta)
        # the value head against V* on the states pi visits, and Q = R or V(s') against Q*
        weight = rep.visits / rep.visits.sum()
        v_error = float((weight * (values - self.optimum.v).abs()).sum())
        child = self.tree.child
        q_hat = torch.where(child >= 0, values[child.clamp(min=0)], self.tree.end_reward)
        q_error = (log_pi.exp() * (q_hat - self.optimum.q).abs()).sum(1)
        gap = self.optimum.objective - self.reference_objective
        report = {
            tags.OBJECTIVE: rep.objective,
            tags.OBJECTIVE_OPTIMAL: self.optimum.objective,
            tags.OBJECTIVE_REFERENCE: self.reference_objective,
            tags.OBJECTIVE_FRACTION: (rep.objective - self.reference_objective) / gap
            if gap > 1e-12 else 1.0,
            tags.KL_TO_OPTIMAL: rep.kl_to_optimal,
            tags.KL_TO_REFERENCE: rep.kl_to_reference,
            tags.REWARD_EXACT: rep.reward,
        }
        if value_head:
            report[tags.V_ERROR_VS_OPTIMAL] = v_error
            report[tags.Q_ERROR_VS_OPTIMAL] = float((weight * q_error).sum())
        return report


def make_oracle(task: TextTask, reference: TokenTransformer, cfg: TextEnvConfig) -> Oracle | None:
    """The oracle, or None with one warning line when the token tree is too large."""
    size = tree_size(task)
    if size > cfg.oracle_max_prefixes:
        print(
            f"warning: the exact optimum needs {size:,} prefixes, more than "
            f"env.oracle_max_prefixes={cfg.oracle_max_prefixes:,}; "
            "oracle skipped, training goes on",
            file=sys.stderr, flush=True,
        )  # fmt: skip
        return None
    return Oracle(task, reference, cfg.beta)


class KLController:
    """Adaptive KL coefficient (Ziegler et al. 2019, section 2.2):
    e = clip(KL / target - 1, -0.2, 0.2),  beta <- beta (1 + e n / horizon), n completions seen.
    With target None the coefficient stays fixed."""

    def __init__(self, beta: float, target: float | None, horizon: int) -> None:
        self.beta, self.target, self.horizon = beta, target, horizon

    def update(self, kl: float, n: int) -> None:
        if self.target is not None:
            error = float(np.clip(kl / self.target - 1.0, -0.2, 0.2))
            self.beta *= 1.0 + error * n / self.horizon

    def state_dict(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.beta = float(state["beta"])


class CompletionRecords:
    """What the runs of both text envs keep the same way: finished completions as episodes,
    their mean reward, and the sample-completion picture and table."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._episodes: list[tuple[Tensor, Tensor]] = []

    def finished(self, batch: Completions) -> None:
        self._episodes.append((batch.rewards.cpu(), batch.mask.sum(1).cpu()))
        self.ctx.recorder.scalar(tags.REWARD_MEAN, batch.rewards.mean())

    def pop_episodes(self) -> tuple[np.ndarray, np.ndarray]:
        done, self._episodes = self._episodes, []
        if not done:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return (torch.cat([r for r, _ in done]).double().numpy(),
                torch.cat([n for _, n in done]).long().numpy())  # fmt: skip

    exact = False  # an oracle logs the exact objective and KL; else they are estimated here
    task: Any  # TextTask or LLMTask: sample_prompts(rng, count)

    def sample(self, net: Any, prompts: np.ndarray, greedy: bool = False,
               generator: torch.Generator | None = None) -> Completions:  # fmt: skip
        raise NotImplementedError

    def describe(self, buffer: np.ndarray, length: int) -> tuple[str, list[str]]:
        """A token buffer's prompt and its first `length` completion tokens, as text."""
        raise NotImplementedError

    def shown_samples(self, net: Any, per_prompt: int) -> Completions:
        """`per_prompt` sampled completions of each of SHOWN_PROMPTS fixed prompts, consecutive."""
        prompts = self.task.sample_prompts(np.random.default_rng(SHOWN_SEED), SHOWN_PROMPTS)
        generator = torch.Generator(device=self.ctx.device).manual_seed(SHOWN_SEED)
        was_training = net.training
        net.eval()
        batch = self.sample(net, np.repeat(prompts, per_prompt, axis=0), generator=generator)
        net.train(was_training)
        return batch

    def rows(self, batch: Completions, values: Tensor | None, advantages: Tensor) -> list[TokenRow]:
        """Completions with per-token V ([B, L] or None) and A ([B, L]) as picture rows."""
        lengths = batch.mask.sum(1).long().tolist()
        out = []
        for i, (buffer, n) in enumerate(zip(batch.tokens.cpu().numpy(), lengths, strict=True)):
            prompt, tokens = self.describe(buffer, n)
            out.append(TokenRow(
                prompt=prompt, tokens=tokens, reward=float(batch.rewards[i]),
                values=None if values is None else values[i, :n].tolist(),
                advantages=advantages[i, :n].tolist(),
            ))  # fmt: skip
        return out


    def sampled_objective(self, batch: Completions, log_probs: Tensor, ref_log_probs: Tensor,
                          beta: float) -> None:  # fmt: skip
        """Where there is no oracle: KL(pi || pi_ref) per completion estimated from the sampled
        ones, sum_t (log pi(a_t|s_t) - log pi_ref(a_t|s_t)), and J = mean R - beta KL."""
        if self.exact:
            return
        kl = ((log_probs - ref_log_probs) * batch.mask).sum(1).mean()
        self.ctx.recorder.scalar(tags.KL_TO_REFERENCE, kl)
        self.ctx.recorder.scalar(tags.OBJECTIVE, batch.rewards.mean() - beta * kl)

    def show(self, rec: Recorder, rows: list[TokenRow]) -> None:
        """The sample completions as a heat map of V and A per token, and as a table of text."""
        rec.image(tags.TOKEN_HEATMAP, token_heatmap(rows))
        rec.text(tags.SAMPLE_COMPLETIONS, token_table(rows))


def completion_run(ctx: Context) -> Any:
    """TextRun on env=text, LMRun (a Hugging Face model, rltrain/algos/lm_rl.py) on env=llm:
    the algorithms call the same methods on either."""
    if ctx.cfg.env.name == "llm":
        from rltrain.algos.lm_rl import LMRun  # imports transformers: only when asked for

        return LMRun(ctx)
    return TextRun(ctx)


class TextRun(CompletionRecords):
    """The pieces every token-level algorithm holds: task, reference, oracle, sampled prompts."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg: TextEnvConfig = ctx.cfg.env
        self.task = TextTask(self.cfg)
        self.reference = pretrain_reference(self.task, ctx)
        self.oracle = make_oracle(self.task, self.reference, self.cfg) if ctx.run_dir else None
        self.exact = self.oracle is not None

    def new_policy(self) -> TokenTransformer:
        """The policy starts as a trainable copy of the reference."""
        net = build_network(self.task, self.ctx)
        net.load_state_dict(self.reference.state_dict())
        return net.train()

    def prompts(self, count: int) -> np.ndarray:
        return self.task.sample_prompts(self.ctx.rng, count)

    # what the algorithms call, so that env=llm's run (rltrain/algos/lm_rl.py) can stand in
    def sample(self, net: TokenTransformer, prompts: np.ndarray, greedy: bool = False,
               generator: torch.Generator | None = None) -> Completions:  # fmt: skip
        return sample(net, self.task, prompts, self.ctx.device, greedy, generator)

    def score(self, net: TokenTransformer, batch: Completions, rows: Tensor | None = None,
              values: bool = True) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """(log pi, V, entropy) per token of the completions (of `rows` of them), [B, L]; the
        small transformer computes V in any case (`values` is for env=llm's large models)."""
        tokens, actions = batch.tokens, batch.actions
        if rows is not None:
            tokens, actions = tokens[rows], actions[rows]
        return score_tokens(net, self.task, tokens, actions)

    def score_reference(self, batch: Completions) -> Tensor:
        """log pi_ref per token of the completions, [B, L]."""
        return score_tokens(self.reference, self.task, batch.tokens, batch.actions)[0]

    def act(self, net: TokenTransformer, obs: np.ndarray, greedy: bool) -> np.ndarray:
        return act_on_buffers(net, self.task, obs, greedy)

    def record(self, rec: Recorder, net: TokenTransformer, value_head: bool = True) -> None:
        if self.oracle is not None:
            for tag, value in self.oracle.report(net, value_head).items():
                rec.scalar(tag, value)

    def describe(self, buffer: np.ndarray, length: int) -> tuple[str, list[str]]:
        """A token buffer's prompt and its first `length` completion tokens, as text."""
        p, vocab = self.task.prompt_len, self.task.vocab
        return vocab.text(buffer[:p]), [vocab.text([t]) for t in buffer[p + 1 : p + 1 + length]]

    def state_dict(self) -> dict[str, Any]:
        return {"reference": self.reference.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reference.load_state_dict(state["reference"])


def reference_path(run_dir: Path) -> Path:
    return run_dir / REFERENCE_FILE
