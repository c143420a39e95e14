"""Local projections that sector services keep of other services' facts."""
