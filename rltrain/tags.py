"""Every TensorBoard tag rltrain writes, named once (docs/metrics.md says what each one means).

Scalars are logged against the environment step. Algorithms import these names instead of
spelling the strings, so one concept has one tag across the families.
"""

from __future__ import annotations

# charts: the run itself
EPISODIC_RETURN = "charts/episodic_return"
EPISODIC_LENGTH = "charts/episodic_length"
SPS = "charts/sps"
EPSILON = "charts/epsilon"
LEARNING_RATE = "charts/learning_rate"
ENT_COEF = "charts/ent_coef"  # SAC's entropy coefficient alpha

# evaluation on separate envs, greedy / mean action
EVAL_RETURN_MEAN = "eval/return_mean"
EVAL_RETURN_STD = "eval/return_std"
# the best evaluation so far (eval/return_exact where the env has it): what best.pt holds
EVAL_BEST_RETURN = "eval/best_return"
EVAL_VIDEO = "eval/video"
# the exact expected return of the deterministic policy, where the env can compute it (the
# recommender, by policy evaluation on its model): eval/return_mean without the sampling noise
EVAL_RETURN_EXACT = "eval/return_exact"
# reference policies an env scores for itself (the recommender: random, greedy, optimal), beside
# eval/return_mean: eval/baseline_<name>
EVAL_BASELINE_PREFIX = "eval/baseline_"
EVAL_BASELINE_RANDOM = "eval/baseline_random"
EVAL_BASELINE_GREEDY = "eval/baseline_greedy"
EVAL_BASELINE_OPTIMAL = "eval/baseline_optimal"

# value estimates: Q, V = E[Q] (max Q for greedy learners), A = Q - V
Q_MEAN = "values/q_mean"
Q_MAX = "values/q_max"
V_MEAN = "values/v_mean"
ADVANTAGE_MEAN = "values/advantage_mean"
ADVANTAGE_STD = "values/advantage_std"
TD_ERROR = "values/td_error"
EXPLAINED_VARIANCE = "values/explained_variance"
Q_BIAS = "values/q_bias"  # predicted Q(s, a) minus the discounted return that followed
# twin critics (TD3): mean |Q1(s, a) - Q2(s, a)| on the replayed pairs
Q_DISAGREEMENT = "values/q_disagreement"
Q_HISTOGRAM = "values/q"
V_HISTOGRAM = "values/v"
ADVANTAGE_HISTOGRAM = "values/advantage"
# the means of Q, V and A, drawn on one Custom Scalars chart (rltrain/algos/value_estimates.py)
VALUE_MEAN_TAGS = (Q_MEAN, V_MEAN, ADVANTAGE_MEAN)
# tabular, against the exact optimum of the env's model
Q_ERROR_VS_OPTIMAL = "values/q_error_vs_optimal"
POLICY_AGREEMENT = "values/policy_agreement"
BELLMAN_RESIDUAL = "values/bellman_residual"
SWEEPS = "values/sweeps"
V_HEATMAP = "values/v_heatmap"
V_ERROR_VS_OPTIMAL = "values/v_error_vs_optimal"
GREEDY_ARROWS = "policy/greedy_arrows"
# contextual bandits: cumulative expected regret against the best arm of each context
BANDIT_REGRET = "bandit/regret"

# losses and the policy
POLICY_LOSS = "losses/policy_loss"
VALUE_LOSS = "losses/value_loss"
TD_LOSS = "losses/td_loss"
GRAD_NORM = "losses/grad_norm"  # global L2 norm of the gradient before clipping
# the actor's, where it has an update of its own (SAC, TD3/DDPG; TRPO: the surrogate's gradient)
ACTOR_GRAD_NORM = "losses/actor_grad_norm"
ENT_COEF_LOSS = "losses/ent_coef_loss"  # SAC with ent_coef=auto: the loss of log(alpha)
ENTROPY = "policy/entropy"
APPROX_KL = "policy/approx_kl"
CLIP_FRACTION = "policy/clip_fraction"
# TRPO: the surrogate's gain of the accepted step, and the line-search tries it took
SURROGATE_IMPROVEMENT = "policy/surrogate_improvement"
LINE_SEARCH_STEPS = "policy/line_search_steps"
GRAD_VARIANCE = "policy/grad_variance"
GRAD_VARIANCE_NO_BASELINE = "policy/grad_variance_no_baseline"

# HParams: the keys the run set, with the last values of these (final eval, best so far)
HPARAM_METRICS = (EVAL_RETURN_MEAN, EVAL_BEST_RETURN)

# Language models (env=text), against the exact KL-regularized optimum (rltrain/algos/token_rl.py)
REWARD_MEAN = "charts/reward_mean"  # sampled completions of the iteration
REWARD_EXACT = "charts/reward_exact"  # E[R] under the policy, summed over the token tree
OBJECTIVE = "charts/objective"  # E[R] - beta KL(pi || pi_ref), exact
OBJECTIVE_OPTIMAL = "charts/objective_optimal"  # J*
OBJECTIVE_REFERENCE = "charts/objective_reference"  # J of the reference policy
OBJECTIVE_FRACTION = "charts/objective_fraction"  # (J - J_ref) / (J* - J_ref)
KL_TO_OPTIMAL = "policy/kl_to_optimal"
KL_TO_REFERENCE = "policy/kl_to_reference"
# sample completions of fixed prompts: V (PPO) and A per token as a picture, and as text
TOKEN_HEATMAP = "values/token_heatmap"
SAMPLE_COMPLETIONS = "text/sample_completions"
KL_COEF = "charts/kl_coef"  # the (adaptive) KL coefficient of the per-token reward
