"""Analysis of a results folder: Pareto frontiers, budget adherence and run comparison."""
