spoke_test(test_base ${CMAKE_CURRENT_LIST_DIR}/test_base.c LABELS unit)
