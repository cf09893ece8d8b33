"""Raw video in: face detection and cropping, video-file prediction, the overlay."""
