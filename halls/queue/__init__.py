"""Queue numbers (取号): taking, following and calling tickets."""
