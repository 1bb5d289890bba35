spoke_test(test_engine ${CMAKE_CURRENT_LIST_DIR}/test_engine.c LABELS unit)
