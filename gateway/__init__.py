"""Payment gateway connector for Vietnam's online public services."""
