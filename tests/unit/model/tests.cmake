spoke_test(test_model ${CMAKE_CURRENT_LIST_DIR}/test_model.c LABELS unit)
