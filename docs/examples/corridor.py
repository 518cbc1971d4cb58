"""A ten-line env of your own (README "Your own env"): walk right along a corridor to its end."""

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    def __init__(self, length: int = 5):  # no render_mode: rltrain passes it only for videos
        self.length, self.pos = length, 0
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)  # 0: left, 1: right

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.pos = max(0, self.pos + (1 if action == 1 else -1))
        done = self.pos == self.length - 1  # +1 at the end, -0.01 per step before it
        obs = np.array([self.pos / (self.length - 1)], np.float32)
        return obs, (1.0 if done else -0.01), done, False, {}


gym.register("Corridor-v0", entry_point=Corridor, max_episode_steps=50)
