package filesystem

const platformSupported = true
