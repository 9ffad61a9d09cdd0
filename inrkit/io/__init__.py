"""File IO for every kind of data inrkit reads or writes: images, audio, video, shapes and meshes.

One reader and one writer per format, each validating its input with one-line errors; writes are
atomic (:mod:`inrkit.files`). Signals, scenes, exports and the API all read and write through here.
"""
