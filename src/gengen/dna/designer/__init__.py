"""Design by activation maximisation: objectives (the kinds register themselves), hard constraints, the gradient loop and the greedy polish, and the design result with its figures."""
