"""The paper's claim, measured properly: ViCoFace against LIA from the same trained start.

Protocol (``python -m training.experiments``, the paper's two stages):

1. Stage 1 (`runs.train_stage1`): LIA self-reenactment from scratch until
   its validation cross PSNR gains less than ``min_gain_db`` per
   ``eval_every`` steps (the curve is kept).
2. Stage 2 (`runs.train_stage2`), both arms from that checkpoint, the same
   items in the same order, the same number of steps, per seed (the seed
   sets the new heads' init and the data order): arm A continues LIA
   self-reenactment; arm B is ViCoFace's mixture training with the frozen
   stage-1 LIA as the pseudo-target teacher, L_id and L_lmk through the
   auxiliary networks, and the multi-path term.
3. Ablations of arm B from the same start (`config.ABLATIONS`).
4. Scores on held-out test identities (`scores`), on all pairs and on the
   shape-mismatch subset (`pairs`), with pictures (`figures`).
"""
