"""What the command lines do, as functions a test can call: classifying image files."""
