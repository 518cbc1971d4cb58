"""Building blocks below the algorithms: returns, replay buffers, sum tree, statistics, dynamic
programming and optimizers. Pure math and data structures; no algorithm, loop or config here."""
