"""The live avatar path: reenactment stages, compositing, live settings (see README.md).

Modules:
    `build`: `build_avatar_stages`, the stage list for a settings box and a model.
    `stages`: the avatar, motion and generate stages; `composite`: paste-back.
    `avatar`: portrait preparation (detect, crop, encode once).
    `shared_sessions`: `SessionFactory`, each WebRTC session's stages from one model.
    `live_settings`: `LiveSettings`, `AvatarKey`, `OutputMode`: what users change while it runs.
    `output_mode`: `OutputMode` alone (importable without torch, for the command line).
    `controls`: the terminal keys of ``vicocam run``.
    `person`: the synthetic world as a driver (``person:N``) and as avatars.
    `tensors`, `types`: device-tensor plumbing and the per-frame result types.

Nothing is imported here, so naming one module does not load the others (or torch).
"""
